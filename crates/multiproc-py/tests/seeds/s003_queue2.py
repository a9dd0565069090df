from multiproc import Queue

q = Queue(2)
q.put(1)
q.put(2)
print(q.qsize())
print(q.get())
print(q.get())
print(q.qsize())
