"""A user's MLP on scikit-learn's digits, 5 kofn workers: MDS k=4, worker 1 slow by 2 s a round."""

import copy
import threading
import time

import torch
from sklearn.datasets import load_digits

import kofn

X, y = load_digits(return_X_y=True)
X, y = torch.tensor(X / 16, dtype=torch.float32), torch.tensor(y)
ROUNDS, store, job = 30, kofn.LocalStore("runs/store"), f"digits-{time.time_ns()}"
code = kofn.make_code("mds", 5, k=4)  # any 4 of the 5 merged shards decode
torch.manual_seed(0)
initial = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def worker(i: int) -> None:
    model = copy.deepcopy(initial)  # every worker starts from the same model
    opt, part = torch.optim.SGD(model.parameters(), lr=0.3), slice(300 * i, 300 * (i + 1))
    with kofn.AllReduce(store, code, worker=i, job=job, quorum=4) as session:
        while session.round < ROUNDS:  # a late worker's call may cover several rounds
            before = kofn.to_numpy(model)
            for _ in range(5):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(X[part]), y[part]).backward()
                opt.step()
            time.sleep(2.0 if i == 1 else 0.0)  # the straggler
            update = {k: v - before[k] for k, v in kofn.to_numpy(model).items()}
            model.load_state_dict(kofn.from_numpy(before, like=model))
            kofn.add_(model, session.allreduce(update))  # + the mean of the round(s)
    accuracy = (model(X[1500:]).argmax(1) == y[1500:]).float().mean().item()
    print(f"worker {i}: {session.round} rounds, test accuracy {accuracy:.3f}", flush=True)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
[t.start() for t in threads], [t.join() for t in threads]
