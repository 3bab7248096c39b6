# Base R, no package: a seeded Monte Carlo of N walkers on the plane, each step a normal jump in
# x and in y. A line per step: the mean position and the mean squared distance (about 2 x step)
# as exact hex floats, and how many walkers are beyond that distance; last, how many ever were.
# Its state is R's own: the Mersenne-Twister state in .Random.seed and five vectors of N (160 MB
# at N = 4e6; with the step's temporaries not yet collected, R holds about 300 MB). First line:
# the process's thread count (R's OpenBLAS starts its threads at load, used or not). R writes
# each line out as it goes, to a file too (no flush needed). Each step also leaves a small state
# file (the step and the far count so far) in R's session folder, tempdir() (/tmp/RtmpXXXXXX,
# made at R's start, nothing held open in it), reads the previous step's back and removes it, as
# a program keeping scratch files there does; the last line's counts are checked against it. On
# a node without that folder the next step stops ("cannot open file '/tmp/RtmpXXXXXX/walk-N': No
# such file or directory").
#     Rscript random_walk.R N STEPS
args <- commandArgs(trailingOnly = TRUE)
n <- as.integer(args[1])
steps <- as.integer(args[2])
cat(sprintf("threads %d\n", length(list.files("/proc/self/task"))))
# Named kinds: the same stream whatever R's defaults become.
set.seed(20261206, kind = "Mersenne-Twister", normal.kind = "Inversion")
x <- numeric(n)
y <- numeric(n)
times_far <- integer(n)
state_file <- function(step) file.path(tempdir(), sprintf("walk-%d", step))
far_so_far <- 0L
for (step in seq_len(steps)) {
  if (step > 1) {
    previous <- as.integer(strsplit(readLines(state_file(step - 1)), " ")[[1]])
    stopifnot(previous[1] == step - 1)
    far_so_far <- previous[2]
    unlink(state_file(step - 1))
  }
  x <- x + rnorm(n)
  y <- y + rnorm(n)
  r2 <- x * x + y * y
  far <- r2 > 2 * step
  times_far <- times_far + far
  far_so_far <- far_so_far + sum(far)
  writeLines(sprintf("%d %d", step, far_so_far), state_file(step))
  cat(sprintf("step %d mean %a %a msd %a far %d\n", step, mean(x), mean(y), mean(r2), sum(far)))
}
stopifnot(far_so_far == sum(times_far))
cat(sprintf("walkers %d steps %d ever far %d most %d\n", n, steps, sum(times_far > 0), max(times_far)))
