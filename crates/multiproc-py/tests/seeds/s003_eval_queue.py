from multiproc import Queue, Process


def func(exp, q):
    ret = eval(exp)
    print(ret, flush=True)
    q.put(ret)


if __name__ == "__main__":
    q = Queue()
    p = Process(target=func, args=("10+20+30", q)).start()
    print(q.get())
