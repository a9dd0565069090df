import time
import multiproc


def product(parent):
    for i in range(1, 11):
        print(f"发送数据{i}", flush=True)
        parent.send(i)
        time.sleep(0.01)


def customer(child):
    for i in range(1, 11):
        data = child.recv()
        print(f"收到数据{data}", flush=True)


if __name__ == '__main__':
    parent_con, child_con = multiproc.Pipe(True)
    p1 = multiproc.Process(target=product, args=(parent_con, ))
    p2 = multiproc.Process(target=customer, args=(child_con, ))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
