from multiproc import Process, Pipe


def sender(conn):
    messages = ['Hello', 'World', 'Bye', None]  # None: the sentinel the receiver waits for
    for message in messages:
        conn.send(message)
        print("发送消息:", message, flush=True)
    conn.close()


def receiver(conn):
    while True:
        message = conn.recv()
        if message is None:
            break
        print("接收消息:", message, flush=True)


if __name__ == '__main__':
    parent_conn, child_conn = Pipe()
    p1 = Process(target=sender, args=(child_conn,))
    p2 = Process(target=receiver, args=(parent_conn,))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
