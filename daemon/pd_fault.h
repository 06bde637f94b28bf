/* pd_fault: a fault-injecting backend for tests, compiled only into the
 * test binary planktond-faultinject (-DPD_FAULT_INJECTION), never into
 * planktond. It wraps the real backend through the pd_backend ops table
 * and makes chosen plan runs fail the way a device error would (an error
 * code and message, the output rows scribbled with NaN), so the tests can
 * show that a failed batch fails only its own requests, with INTERNAL, and
 * that the daemon keeps serving.
 *
 * $PD_FAULT_INJECT chooses the runs (counted from 1 over the process, all
 * plans together), comma-separated:
 *   every=N     every Nth run fails
 *   runs=A:B    runs A to B fail (A alone: just run A)
 *   after=N     every run after the Nth fails (a device that stays broken)
 *   delay_ms=N  every run first sleeps N ms (a slow device: requests stay
 *               queued and in flight long enough for a test to act meanwhile)
 *   leak_bytes=N every run takes N bytes per image (malloc'ed and written),
 *               held until its plan is destroyed: a leak as the soak sees one,
 *               for showing that its RSS bound fails
 *   device_error=N run N is a sticky device error (PD_EDEVICE, as the CUDA
 *               plan returns after an illegal address): that plan fails
 *               every later run too, naming it, so the engine's
 *               engine.on_device_error (rebuild on the CPU, or fail) runs
 *               without a GPU
 * Unset or empty: the wrapper passes every run through. */
#ifndef PD_FAULT_H
#define PD_FAULT_H

#include "pd_backend.h"

/* Replaces *be by a wrapper that owns it. */
int pd_fault_wrap(pd_backend **be, pd_error *err);

#endif
