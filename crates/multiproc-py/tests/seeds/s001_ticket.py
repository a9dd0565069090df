import json
import os
import sys
import time
import random
import multiproc

DATA = os.path.join(sys.argv[1], "data")


def search(username):
    with open(DATA, "r", encoding="utf-8") as f:
        dic = json.load(f)
    print(f"{username}查询到余票{dic.get('ticket_num')}", flush=True)


def buy(username, l):
    with open(DATA, 'r', encoding='utf-8') as f:
        dic = json.load(f)
    time.sleep(random.randint(1, 2) / 100)
    if dic.get("ticket_num") > 0:
        dic['ticket_num'] -= 1
        # Written to a new file and renamed over the old: search() reads
        # without the lock and must never see a half-written file.
        with open(DATA + ".new", 'w', encoding='utf-8') as f:
            json.dump(dic, f)
        os.replace(DATA + ".new", DATA)
        print(f"{username}购票成功", flush=True)
    else:
        print(f'{username}购票失败', flush=True)


def run(username, l):
    search(username)
    l.acquire()
    try:
        buy(username, l)
    finally:
        l.release()


if __name__ == '__main__':
    with open(DATA, "w", encoding="utf-8") as f:
        json.dump({"ticket_num": 1}, f)
    mutex = multiproc.Lock()
    for i in range(1, 11):
        p = multiproc.Process(target=run, args=(i, mutex))
        p.start()
