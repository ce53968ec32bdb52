/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* LT_CLAMP: helper size arguments that every verifier since 4.14 can prove.
 * libtrace/bpf/helper_sizes.py recognises the sequence in compiled objects. */
#ifndef LT_CLAMP_H
#define LT_CLAMP_H

/* Keep a helper's size argument within [lo, hi] in the very register the
 * call uses.  A C comparison lets clang test a copy (or a value it reloads
 * from the stack later), and verifiers before 5.10 forget the bounds of a
 * scalar spilled to the stack ("bpf: track spill/fill of bounded scalars"):
 * 4.19 tracks only spilled pointers, 5.3-5.9 only constants.  The sequence
 * gives the verifier both bounds through unsigned comparisons alone, which
 * every verifier since 4.14 learns from (4.14 learns nothing from `!= 0`, and
 * its probe_read refuses a size that may be 0).  It never changes a value
 * already within [lo, hi]. */
#define LT_CLAMP(var, lo, hi)                                                        \
	asm volatile("%[v] -= %[l]\n\t"                                              \
		     "if %[v] <= %[span] goto +1\n\t"                                  \
		     "%[v] = %[span]\n\t"                                               \
		     "%[v] += %[l]"                                                     \
		     : [v] "+r"(var)                                                    \
		     : [l] "i"(lo), [span] "i"((hi) - (lo)))

#endif
