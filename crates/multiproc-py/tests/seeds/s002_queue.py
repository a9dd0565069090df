from multiproc import Process, Queue


def producer(queue):
    for i in range(5):
        queue.put(i)
        print("生产者放入数据", i, flush=True)


def consumer(queue):
    while True:
        data = queue.get()
        if data is None:
            break
        print("消费者获取数据", data, flush=True)


if __name__ == '__main__':
    queue = Queue()
    p1 = Process(target=producer, args=(queue,))
    p2 = Process(target=consumer, args=(queue,))
    p1.start()
    p2.start()
    p1.join()
    queue.put(None)  # the original never sends the sentinel
    p2.join()
    # Not in the original: how each child ended, so that a child that died
    # (a signal leaves no traceback) is told apart from a lost item.
    print("exitcodes", p1.exitcode, p2.exitcode, flush=True)
