import time
import random
from multiproc import Process, JoinableQueue

q = JoinableQueue()


def producer(q):
    for i in range(1, 11):
        num = random.random()
        print(f"生产者产生数据: {num}", flush=True)
        q.put(num)
        time.sleep(0.01)


def customer(q):
    while True:
        print(f"消费者获取数据: {q.get()}", flush=True)
        q.task_done()
        time.sleep(0.01)


if __name__ == '__main__':
    p1 = Process(target=producer, args=(q,))
    p2 = Process(target=producer, args=(q,))
    c2 = Process(target=customer, args=(q, ))
    p1.start()
    p2.start()
    c2.daemon = True
    c2.start()
    p1.join()
    p2.join()
    q.join()
    print("all done")
