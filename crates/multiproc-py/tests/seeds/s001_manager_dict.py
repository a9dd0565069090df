import multiproc


def task(dic):
    dic['a'] = 'a'


if __name__ == '__main__':
    manager = multiproc.Manager()
    manager_dic = manager.dict()
    print(manager_dic)
    p = multiproc.Process(target=task, args=(manager_dic,))
    p.start()
    p.join()
    print(manager_dic)
