from multiproc import Process
from multiproc import Semaphore
from time import sleep


def sub_process(sem):
    print("enter sub process", flush=True)
    sem.acquire()
    print("acquire sem", flush=True)
    sleep(0.02)
    sem.release()
    print("release sem", flush=True)


if __name__ == '__main__':
    sem = Semaphore(3)
    for i in range(5):
        sub_p = Process(target=sub_process, args=(sem,))
        sub_p.start()
