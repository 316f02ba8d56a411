/* The block form of the softmax family at one vector width: BW slices side
 * by side, one per lane of a BVEC, element i of slice k at x[i*si + k]
 * (columns in place, or short rows moved into lanes).  softmax_template.h
 * includes this once per width after defining
 *   BVEC, BMASK, BW      the vector, its comparisons' lanes, its lane count
 *   BEXP_NONPOS          EXP_NONPOS on a BVEC
 *   BLOAD_FIRST, BSTORE_FIRST  its first w lanes from and to memory
 *   FSM_B(name)          the name of this width's instance of `name`
 * and undefines them after. */
#define FSM_BV(name) FSM_B(v##name)

FSM_DEFINE_VECTOR_OPS(BVEC, BW, FSM_BV, BLOAD_FIRST, BSTORE_FIRST)

/* FSM_BV(store_at) and BEXP_NONPOS of an expression. */
#define FSM_VSTORE(p, value, w) FSM_STORE_VALUE(BVEC, FSM_BV(store_at), p, value, w)
#define FSM_VEXP_NONPOS(value, result) FSM_EXP_VALUE(BVEC, BEXP_NONPOS, value, result)

/* The w < BW columns of a partial block (element i of column k at x[i*si +
 * k]) into lanes of full vectors (element i at lanes + i*BW, the other
 * lanes 0), and back.  A block's loads and stores of w lanes cost several
 * times a full vector's, and a store of w lanes stalls the load that reads
 * it back: softmax of columns 8 wide, in 16-lane vectors, took 3.3 times as
 * long as in 8-lane ones. */
FSM_ALWAYS_INLINE void FSM_B(partial_to_lanes)(const REAL *x, ptrdiff_t n, ptrdiff_t si,
                                               ptrdiff_t w, REAL *lanes)
{
    for (ptrdiff_t i = 0; i < n; i++) FSM_VSTORE(lanes + i * BW, FSM_BV(load)(x + i * si, w, 0), BW);
}

FSM_ALWAYS_INLINE void FSM_B(partial_from_lanes)(const REAL *lanes, ptrdiff_t n, ptrdiff_t w,
                                                 REAL *out, ptrdiff_t si)
{
    for (ptrdiff_t i = 0; i < n; i++) FSM_VSTORE(out + i * si, FSM_BV(load)(lanes + i * BW, BW, 0), w);
}

/* In a block: the vector of element i, and its store. */
#define FSM_LOAD(p, i) FSM_BV(load)((p) + (i) * si, w, 0)
#define FSM_STORE(p, i, v) FSM_VSTORE((p) + (i) * si, v, w)

/* Per lane, b where b > a, else a (NaN in b ignored): written as a loop
 * over the lanes, which the compiler makes one max instruction, where the
 * select of the same comparison took a compare and a blend, one waiting on
 * the other. */
FSM_ALWAYS_INLINE BVEC FSM_BV(max)(const BVEC *a, const BVEC *b)
{
    REAL lane[BW];
    BVEC m;
    memcpy(lane, a, sizeof lane);
    FSM_LANE_LOOP for (int k = 0; k < BW; k++) lane[k] = (*b)[k] > lane[k] ? (*b)[k] : lane[k];
    memcpy(&m, lane, sizeof m);
    return m;
}

FSM_ALWAYS_INLINE BVEC FSM_B(block_max)(const REAL *x, ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    BVEC m0 = FSM_BV(splat)((REAL)-INFINITY), m1 = m0;
    ptrdiff_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const BVEC v0 = FSM_LOAD(x, i), v1 = FSM_LOAD(x, i + 1);
        m0 = FSM_BV(max)(&m0, &v0);
        m1 = FSM_BV(max)(&m1, &v1);
    }
    if (i < n) {
        const BVEC v = FSM_LOAD(x, i);
        m0 = FSM_BV(max)(&m0, &v);
    }
    return FSM_BV(max)(&m0, &m1);
}

/* Per lane: sum(exp(x[i] - m)) over i in [i0, i1) (m = *mp), in REAL, and
 * e = exp(x - m) there unless e is NULL; even and odd i in two sums, so that neither
 * waits on a chain of i1 - i0 adds. */
FSM_ALWAYS_INLINE BVEC FSM_B(block_exp_sum_part)(const REAL *x, REAL *e, ptrdiff_t i0,
                                                  ptrdiff_t i1, ptrdiff_t si, ptrdiff_t w,
                                                  const BVEC *mp)
{
    const BVEC m = *mp;
    BVEC s0 = {0}, s1 = {0};
    ptrdiff_t i = i0;
    for (; i + 2 <= i1; i += 2) {
        BVEC e0, e1;
        FSM_VEXP_NONPOS(FSM_LOAD(x, i) - m, e0);
        FSM_VEXP_NONPOS(FSM_LOAD(x, i + 1) - m, e1);
        if (e) {
            FSM_STORE(e, i, e0);
            FSM_STORE(e, i + 1, e1);
        }
        s0 += e0;
        s1 += e1;
    }
    if (i < i1) {
        BVEC ei;
        FSM_VEXP_NONPOS(FSM_LOAD(x, i) - m, ei);
        if (e) FSM_STORE(e, i, ei);
        s0 += ei;
    }
    return s0 + s1;
}

/* Per lane: sum(exp(x - *m)) into acc, in parts of FSM_FLUSH terms, and e =
 * exp(x - *m) unless e is NULL.  (With n <= FSM_FLUSH the sum is one part's,
 * a REAL held exactly.) */
FSM_ALWAYS_INLINE void FSM_B(block_exp_sum)(const REAL *x, REAL *e, ptrdiff_t n, ptrdiff_t si,
                                            ptrdiff_t w, const BVEC *m, ACC *acc)
{
    for (int k = 0; k < BW; k++) acc[k] = 0;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += FSM_FLUSH) {
        const ptrdiff_t i1 = n - i0 < FSM_FLUSH ? n : i0 + FSM_FLUSH;
        const BVEC s = FSM_B(block_exp_sum_part)(x, e, i0, i1, si, w, m);
        FSM_BV(flush)(acc, &s);
    }
}


FSM_ALWAYS_INLINE void FSM_B(fsm_softmax_block)(const REAL *x, const REAL *unused, REAL *out,
                                                ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    (void)unused;
    const BVEC m = FSM_B(block_max)(x, n, si, w);
    REAL *e = w == BW ? out : NULL;
    BVEC f;
    if (n <= FSM_FLUSH) {
        /* 1 / sum rounded to double and then to REAL is 1 / sum rounded to
         * REAL (double has more than twice REAL's precision): the same bits
         * as below, without the trip through double. */
        f = 1 / FSM_B(block_exp_sum_part)(x, e, 0, n, si, w, &m);
    } else {
        ACC acc[BW];
        FSM_B(block_exp_sum)(x, e, n, si, w, &m, acc);
        for (int k = 0; k < BW; k++) f[k] = (REAL)(1 / acc[k]);
    }
    if (e) {
        for (ptrdiff_t i = 0; i < n; i++) FSM_STORE(out, i, FSM_LOAD(out, i) * f);
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            BVEC ei;
            FSM_VEXP_NONPOS(FSM_LOAD(x, i) - m, ei);
            FSM_STORE(out, i, ei * f);
        }
    }
}


FSM_ALWAYS_INLINE void FSM_B(fsm_log_softmax_block)(const REAL *x, const REAL *unused, REAL *out,
                                                    ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    (void)unused;
    ACC acc[BW];
    const BVEC m = FSM_B(block_max)(x, n, si, w);
    FSM_B(block_exp_sum)(x, NULL, n, si, w, &m, acc);
    BVEC log_sum;
    for (int k = 0; k < BW; k++) log_sum[k] = (REAL)fsm_log_ge1(acc[k]); /* vectorises */
    for (ptrdiff_t i = 0; i < n; i++) FSM_STORE(out, i, (FSM_LOAD(x, i) - m) - log_sum);
}


/* Per lane: the first largest entry, or the first NaN (as numpy.argmax). */
FSM_ALWAYS_INLINE void FSM_B(fsm_hardmax_block)(const REAL *x, const REAL *unused, REAL *out,
                                                ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    (void)unused;
    BVEC best = FSM_LOAD(x, 0);
    BMASK at = {0}; /* index of the best entry so far */
    for (ptrdiff_t i = 1; i < n; i++) {
        const BVEC v = FSM_LOAD(x, i);
        const BMASK take = (v > best) | ((v != v) & (best == best));
        best = FSM_VSELECT(take, v, best);
        at = FSM_VSELECT(take, at * 0 + (__typeof__(at[0]))i, at);
    }
    const BVEC one = FSM_BV(splat)(1), zero = {0};
    for (ptrdiff_t i = 0; i < n; i++)
        FSM_STORE(out, i, FSM_VSELECT(at == (__typeof__(at[0]))i, one, zero));
}


FSM_ALWAYS_INLINE void FSM_B(fsm_softmax_backward_block)(const REAL *g, const REAL *y, REAL *out,
                                                         ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    ACC acc[BW] = {0};
    for (ptrdiff_t i = 0; i < n; i++) {
        const BVEC gi = FSM_LOAD(g, i), yi = FSM_LOAD(y, i);
        for (int k = 0; k < BW; k++) acc[k] += (ACC)gi[k] * (ACC)yi[k];
    }
    BVEC s;
    for (int k = 0; k < BW; k++) s[k] = (REAL)acc[k];
    for (ptrdiff_t i = 0; i < n; i++) FSM_STORE(out, i, FSM_LOAD(y, i) * (FSM_LOAD(g, i) - s));
}


/* Per lane, sum(g * f) in order. */
FSM_ALWAYS_INLINE void FSM_B(block_sum_scaled)(const REAL *g, ptrdiff_t n, ptrdiff_t si,
                                               ptrdiff_t w, ACC f, ACC *acc)
{
    for (int k = 0; k < BW; k++) acc[k] = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const BVEC gi = FSM_LOAD(g, i);
        for (int k = 0; k < BW; k++) acc[k] += (ACC)gi[k] * f;
    }
}

FSM_ALWAYS_INLINE void FSM_B(fsm_log_softmax_backward_block)(const REAL *g, const REAL *logp,
                                                             REAL *out, ptrdiff_t n, ptrdiff_t si,
                                                             ptrdiff_t w)
{
    ACC acc[BW], scaled[BW];
    FSM_B(block_sum_scaled)(g, n, si, w, 1, acc);
    int overflow = 0;
    for (int k = 0; k < BW; k++) overflow |= !isfinite(acc[k]);
    if (overflow) { /* as in row_sum */
        FSM_B(block_sum_scaled)(g, n, si, w, FSM_SUM_DOWN, scaled);
        for (int k = 0; k < BW; k++) acc[k] = isfinite(acc[k]) ? acc[k] : scaled[k] * FSM_SUM_UP;
    }
    REAL s[BW];
    for (int k = 0; k < BW; k++) s[k] = (REAL)acc[k];
    for (ptrdiff_t i = 0; i < n; i++) {
        const BVEC gi = FSM_LOAD(g, i), li = FSM_LOAD(logp, i);
        BVEC o;
        for (int k = 0; k < BW; k++) o[k] = gi[k] - EXP(li[k]) * s[k];
        FSM_STORE(out, i, o);
    }
}

#undef FSM_LOAD
#undef FSM_STORE
#undef FSM_VSTORE
#undef FSM_VEXP_NONPOS
#undef FSM_BV
#undef BVEC
#undef BMASK
#undef BW
#undef BEXP_NONPOS
#undef BLOAD_FIRST
#undef BSTORE_FIRST
#undef FSM_B
