import java.util.concurrent.CyclicBarrier;

/**
 * Two long-lived worker threads each sum half of a deterministic series, round after round; the
 * barrier that ends a round prints the total so far. Same arguments, same lines.
 *     java TwoWorkers.java ROUNDS TERMS_PER_ROUND
 */
public class TwoWorkers {
    static long part(long from, long to, long round) {
        long sum = 0;
        for (long i = from; i < to; i++) {
            long x = (i * 0x9E3779B97F4A7C15L) ^ (round << 17);
            x ^= x >>> 31;
            sum += x * 0xBF58476D1CE4E5B9L;
        }
        return sum;
    }

    public static void main(String[] args) throws Exception {
        final int rounds = Integer.parseInt(args[0]);
        final long perRound = Long.parseLong(args[1]);
        final long[] halves = new long[2];
        final long[] total = new long[1];
        final int[] round = {1};
        CyclicBarrier barrier = new CyclicBarrier(2, () -> {
            total[0] += halves[0] ^ Long.rotateLeft(halves[1], round[0]);
            System.out.printf("round %d total %016x%n", round[0], total[0]);
            round[0]++;
        });
        Thread[] workers = new Thread[2];
        for (int w = 0; w < 2; w++) {
            final int k = w;
            workers[w] = new Thread(() -> {
                try {
                    for (int r = 1; r <= rounds; r++) {
                        halves[k] = part(k * perRound / 2, (k + 1) * perRound / 2, r);
                        barrier.await();
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            }, "worker-" + w);
            workers[w].start();
        }
        for (Thread t : workers) t.join();
        System.out.printf("threads done, final %016x%n", total[0]);
    }
}
