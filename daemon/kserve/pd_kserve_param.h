/* pd_kserve_param: what the Open Inference Protocol conversions share
 * (pd_kserve_infer for crops, pd_kserve_frame for frames, pd_kserve_rest
 * for JSON): a request parameter (InferParameter) read as a number or a
 * flag the way clients send them (gRPC typed, REST from JSON: integral
 * doubles and decimal strings too), a parameter's value as text for an
 * error message, a formatted error into the caller's buffer, a raw
 * element's little-endian length, and packing an answer. Pure. */
#ifndef PD_KSERVE_PARAM_H
#define PD_KSERVE_PARAM_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_service.pb-c.h"

/* 0 and the value, or -1 (absent, another type, out of range). Integers:
 * int64, uint64 up to LLONG_MAX, an integral double or a decimal string.
 * Doubles: a finite double, a decimal string or an integer. Flags: a bool,
 * "true"/"false", or the integers 0 and 1. */
int pd_kparam_int(const Inference__InferParameter *p, long long *v);
int pd_kparam_double(const Inference__InferParameter *p, double *v);
int pd_kparam_bool(const Inference__InferParameter *p, int *v);

/* The parameter's value as a message shows it ("(no value)" when absent). */
void pd_kparam_text(const Inference__InferParameter *p, char *buf, size_t cap);

/* msg[cap] gets the message; returns code (a gRPC status code). */
__attribute__((format(printf, 4, 5))) int pd_kfail(char *msg, size_t cap, int code, const char *fmt,
                                                   ...);

/* A BYTES element's 4-byte little-endian length. */
uint32_t pd_kle32(const uint8_t *p);

/* The tensor's typed contents hold anything (beside raw_input_contents). */
int pd_khas_typed_contents(const Inference__InferTensorContents *c);

/* *out (malloc'ed) and *len: m packed. 0, or 8 (RESOURCE_EXHAUSTED). */
int pd_kpack(const ProtobufCMessage *m, uint8_t **out, size_t *len);

#endif
