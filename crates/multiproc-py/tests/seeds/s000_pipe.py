import time
from multiproc import Pipe, Process


def consumer(left, right):
    left.close()
    while True:
        try:
            get_message = right.recv()
            print("消费者接收到消息： %s" % get_message)
        except EOFError:
            right.close()
            break


def producer(left, right):
    right.close()
    for i in range(10):
        left.send(i)
        time.sleep(0.01)
    left.close()


def pipe_run():
    left, right = Pipe()
    consumer_1 = Process(target=consumer, args=(left, right))
    consumer_1.start()
    producer(left=left, right=right)
    right.close()
    left.close()
    consumer_1.join()


if __name__ == '__main__':
    pipe_run()
