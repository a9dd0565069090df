from multiproc import Queue, Process
import time, random


def write(que):
    for value in range(10):
        print('put %s to queue...' % value, flush=True)
        que.put(value)
        time.sleep(random.random() / 100)


def read(que):
    got = 0
    while got < 10:  # the original loops forever
        if not que.empty():
            value = que.get(True)
            got += 1
            print('get %s from queue...' % value, flush=True)
        else:
            print("wait queue data", flush=True)
        time.sleep(random.random() / 100)


if __name__ == "__main__":
    que = Queue()
    qw = Process(target=write, args=(que,))
    qr = Process(target=read, args=(que,))
    qw.start()
    qr.start()
    qw.join()
    qr.join()
