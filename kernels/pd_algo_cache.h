/* pd_algo_cache: a GPU plan's algorithm choices kept across restarts, so a
 * restart or reload need not measure every convolution at every batch
 * bucket again. Owns the file format and nothing else: one small text file
 * per (device name, compute capability, cuDNN version, precision, model
 * sha256) under a state folder, named by a hash of that key
 * (pd_algo_cache_path), written whole to a temporary file and renamed, so a
 * reader never sees half of one. Plain C (no CUDA): the CUDA plan reads and
 * writes it, and it is tested on any host.
 *
 * Format (version 1), one item a line:
 *   planktond-algo-cache 1
 *   device <name>
 *   compute <major>.<minor>
 *   cudnn <version>
 *   precision <name>
 *   model <sha256 hex>
 *   entries <n>
 *   <layer> <bucket> <algo> <math> <workspace bytes> <ms>   (n lines)
 *   check <FNV-1a 64 of every byte above, hex>
 * A file that does not parse, is cut short or fails its check is corrupt; one
 * whose key differs (another device, driver's cuDNN, precision or weights)
 * is stale. Either is ignored: the loader says which and why in one line
 * for the log, and the plan measures again and rewrites the file. */
#ifndef PD_ALGO_CACHE_H
#define PD_ALGO_CACHE_H

#include <stddef.h>

#include "pd_error.h"

typedef struct pd_algo_key {
  char device[96]; /* "NVIDIA H200" (no newline) */
  int cc_major, cc_minor;
  int cudnn;         /* cudnnGetVersion(), e.g. 91900 */
  char precision[8]; /* "fp32", "tf32", "fp16" */
  char model_sha256[65];
} pd_algo_key;

typedef struct pd_algo_choice {
  int layer, bucket; /* the conv layer's index in its list, the batch bucket */
  int algo, math;    /* cudnnConvolutionFwdAlgo_t, cudnnMathType_t as ints */
  size_t workspace;  /* bytes */
  float ms;          /* measured time (0: a heuristic's choice) */
} pd_algo_choice;

#define PD_ALGO_CACHE_MAX 4096 /* choices in one file */

typedef struct pd_algo_cache {
  pd_algo_key key;
  int n;
  pd_algo_choice e[PD_ALGO_CACHE_MAX];
} pd_algo_cache;

/* state_dir/algo-<16 hex digits of the key's hash>.txt; PD_ELIMIT if it does not fit. */
int pd_algo_cache_path(const char *state_dir, const pd_algo_key *k, char *out, size_t cap,
                       pd_error *err);

/* Reads path into *out (allocated by the caller: it is large). PD_OK: a
 * valid file for key k. Otherwise the file is to be ignored: PD_EIO (not
 * there or unreadable), PD_EFORMAT (corrupt), PD_EINVAL (stale: for another
 * key); err says which, naming the file and what differed. */
int pd_algo_cache_load(const char *path, const pd_algo_key *k, pd_algo_cache *out, pd_error *err);

/* Writes c to path (through path.tmp and a rename); errors name the file. */
int pd_algo_cache_save(const char *path, const pd_algo_cache *c, pd_error *err);

/* The choice for (layer, bucket), or NULL. */
const pd_algo_choice *pd_algo_cache_find(const pd_algo_cache *c, int layer, int bucket);

#endif
