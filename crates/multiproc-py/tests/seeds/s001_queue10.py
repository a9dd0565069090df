from multiproc import Queue

q = Queue(10)
for i in range(1, 11):
    q.put(i)
    print(q.qsize(), end=" ")

print()
for j in range(1, 11):
    print(q.get(), end="->")
