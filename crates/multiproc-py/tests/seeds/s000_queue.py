import time
from multiproc import Process, Queue, set_start_method


def consumer2(q):
    while True:
        res = q.get()
        if res is None:
            break
        time.sleep(0.01)
        print('消费者接收到: %s' % res, flush=True)


def producer2(q):
    for i in range(10):
        res = '第%s个消息' % str(i)
        q.put(res)
        print("生产者发送第%s个消息" % str(i), flush=True)
        time.sleep(0.005)
    q.put(None)


def queue_test():
    set_start_method('fork')
    q = Queue()
    producer_1 = Process(target=producer2, args=(q,))
    consumer_1 = Process(target=consumer2, args=(q,))
    producer_1.start()
    consumer_1.start()


if __name__ == '__main__':
    queue_test()
