import time
import random
from multiproc import Queue, Process

q = Queue()


def producer(q):
    for _ in range(10):  # the original loops forever
        num = random.random()
        print(f"生产者产生数据: {num}", flush=True)
        q.put(num)
        time.sleep(0.01)


def customer(q):
    for _ in range(10):  # the original loops forever
        print(f"消费者获取数据: {q.get()}", flush=True)
        time.sleep(0.01)


if __name__ == '__main__':
    p1 = Process(target=producer, args=(q,))
    p2 = Process(target=customer, args=(q, ))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
