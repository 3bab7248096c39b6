"""A program of the in-place crash-recovery suite: a SQLite database (default rollback journal)
changed in place, a transaction per step: a row inserted and the progress row updated. One line
per step on stdout; exit code 7 at the end. Its database must end as an uninterrupted run's."""
import sqlite3
import sys
import time

steps, path = int(sys.argv[1]), sys.argv[2]
db = sqlite3.connect(path)
db.execute("CREATE TABLE progress (id INTEGER PRIMARY KEY, step INTEGER)")
db.execute("CREATE TABLE rows (step INTEGER, payload TEXT)")
db.execute("INSERT INTO progress VALUES (1, 0)")
db.commit()
for step in range(1, steps + 1):
    (done,) = db.execute("SELECT step FROM progress").fetchone()
    db.execute("INSERT INTO rows VALUES (?, ?)", (done + 1, f"step {done + 1} " + "x" * 300))
    db.execute("UPDATE progress SET step = ?", (done + 1,))
    db.commit()
    print(f"step {step} progress {done + 1}", flush=True)
    time.sleep(0.04)
(rows,) = db.execute("SELECT count(*) FROM rows").fetchone()
print(f"rows {rows}", flush=True)
db.close()
sys.exit(7)
