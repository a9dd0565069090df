from multiproc import Process, Pipe


def func(exp, con1):
    ret = eval(exp)
    print(ret, flush=True)
    con1.send(ret)


if __name__ == "__main__":
    con1, con2 = Pipe()
    p = Process(target=func, args=("10+20+30", con1)).start()
    print(con2.recv())
