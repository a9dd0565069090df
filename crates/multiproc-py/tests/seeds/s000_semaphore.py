from multiproc import Process, Semaphore, Value
import time, random


def go_wc(sem, user, inside, most):
    sem.acquire()
    with inside.get_lock():
        inside.value += 1
        most.value = max(most.value, inside.value)
    print('%s 占到一个茅坑' % user, flush=True)
    time.sleep(random.randint(0, 3) / 100)
    with inside.get_lock():
        inside.value -= 1
    sem.release()


if __name__ == '__main__':
    sem = Semaphore(5)
    inside, most = Value('i', 0), Value('i', 0)
    p_l = []
    for i in range(13):
        p = Process(target=go_wc, args=(sem, 'user%s' % i, inside, most))
        p.start()
        p_l.append(p)
    for i in p_l:
        i.join()
    print("most inside at once:", most.value)
