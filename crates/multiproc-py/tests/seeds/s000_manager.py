from multiproc import Lock, Manager, Process


def work(d, lock):
    with lock:
        print(f"计数器减一，当前为：{d['count']}", flush=True)
        d['count'] -= 1


def manager_test():
    lock = Lock()
    with Manager() as m:
        dic = m.dict({'count': 20})
        p_l = []
        for i in range(20):
            p = Process(target=work, args=(dic, lock))
            p_l.append(p)
            p.start()
        for p in p_l:
            p.join()


if __name__ == '__main__':
    manager_test()
