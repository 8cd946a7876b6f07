/* host/rendezvous.h — the environment bootstrap's meeting place (host/dist.h): a path
 * on a file system every process of the run sees (NFS, Lustre, a local disk for one
 * node), through which rank 0 hands every other rank a blob (NCCL's unique id).
 *
 * Files (P = the path given, DATH_RENDEZVOUS):
 *   P.join.R   rank R > 0: "dath-rendezvous 1 join R W NONCE": here, with a nonce of
 *              128 random bits drawn for this process;
 *   P          rank 0: "dath-rendezvous 1 run W NONCE_0 … NONCE_{W−1} BLOB": the blob,
 *              for the ranks whose nonces it lists;
 *   P.ack.R    rank R > 0: "dath-rendezvous 1 ack R NONCE": R has read P.
 * Every file is written atomically (a temporary beside it, fsync, rename: loader/atomic.h),
 * so a reader sees a whole file or none. A rank accepts P only when P lists its own
 * nonce at its rank, and rank 0 is done only when every P.ack.R carries the nonce P
 * published for R; a nonce is never reused, so a file left by an earlier run (killed
 * in the middle of its rendezvous) is never taken for this run's. Rank 0 first removes
 * P and every P.ack.R (no ack of this run can exist before it publishes P), then
 * publishes P again whenever a P.join.R changes (a join file of an earlier run replaced
 * by this run's rank R), and at the end removes P and every P.join.R and P.ack.R.
 *
 * Returns 0 with the blob in blob[len] on every rank (rank 0 gives it), or -1 with a
 * message that names this rank, the file and the ranks that did not come within
 * timeout_s. */
#ifndef DATH_RENDEZVOUS_H
#define DATH_RENDEZVOUS_H

#include <stddef.h>

#define RDV_MAX_BLOB 1024

int rdv_exchange(const char *path, int rank, int world, void *blob, size_t len, double timeout_s, char *err,
                 size_t err_len);

#endif
