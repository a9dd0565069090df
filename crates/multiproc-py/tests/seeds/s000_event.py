import multiproc
from multiproc import set_start_method

ordered = multiproc.Event()   # the customer ordered
served = multiproc.Event()    # the vendor served


def xiao_fan(ordered, served):
    print('小贩：生产...')
    print('小贩：售卖...')
    print('小贩：等待就餐', flush=True)
    ordered.wait()
    served.set()
    print('小贩：谢谢光临', flush=True)


def gu_ke(ordered, served):
    print('顾客：准备买早餐', flush=True)
    ordered.set()
    served.wait()
    print('顾客：买到早餐')
    print('顾客：享受美食')
    print('顾客：付款，真好吃...', flush=True)


if __name__ == '__main__':
    set_start_method('fork', True)
    xf = multiproc.Process(target=xiao_fan, args=(ordered, served))
    gk = multiproc.Process(target=gu_ke, args=(ordered, served))
    gk.start()
    xf.start()
