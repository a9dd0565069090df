from multiproc import Pipe
from multiproc import Process


def sub_process(out_pipe, in_pipe):
    in_pipe.close()
    while True:
        try:
            msg = out_pipe.recv()
        except EOFError:
            break
        else:
            print(msg, flush=True)


if __name__ == '__main__':
    out_pipe, in_pipe = Pipe(True)
    sub_proc = Process(target=sub_process, args=(out_pipe, in_pipe))
    sub_proc.start()
    out_pipe.close()
    for i in range(5):
        in_pipe.send(i)
    in_pipe.close()
    sub_proc.join()
    print("master proc end")
