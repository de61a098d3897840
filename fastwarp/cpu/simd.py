"""Bilinear SIMD building blocks for the CPU kernels, as LLVM-level intrinsics.

:func:`blend_pixel`: one output pixel of 3 or 4 channels.  A pixel's two
horizontally adjacent taps are one contiguous run of memory (``2 C`` values), so
its 2 x 2 taps are two vector loads, one per tap row, blended vertically and
then horizontally:

    l_k = (1 - fy) top_k + fy bot_k            (k < 2C: both taps of each row)
    v_c = (1 - fx) l_c + fx l_{C + c}          (c < C)

in float32 with fused multiply-adds, for float32 images and for uint8 images
(converted on load; the result rounded to nearest, ties up), and in float64 for
uint16 images (as the reference blends them; rounded and saturated).
:func:`cubic_pixel`: a uint8 bicubic pixel's 4 x 4 taps as four 16-lane rows;
:func:`cubic_pixel_taps`: a float32 one's as sixteen 4-lane taps.

:func:`span_taps`: eight pixels of an affine span's fixed-point coordinates at
once, their tap offsets and fractions; :func:`span_points` the same in float64.

The vectors are generic LLVM vectors (8 lanes), which LLVM lowers to the
machine's own SIMD (SSE, AVX2, AVX-512, NEON): no CPU-specific code here.

Bounds: a 4-channel pixel's loads are its own 2 x 2 taps exactly.  A
3-channel pixel loads 8 values per row, 2 past its taps, unless ``exact`` asks
for masked loads of the taps only (the caller's choice near the end of the
array).  Stores write exactly C channels unless ``spill`` is True, when a
3-channel pixel writes a fourth value into the next pixel's first channel (one
store instead of three); the caller must write that next pixel afterwards, on
the same thread.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..core.coords import CUBIC_A

_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()

LANES = 8  # one tap row of a pixel (2 C values) fits in 8 lanes for C <= 4


def _vec(elem, n):
    return ir.VectorType(elem, n)


def _splat(builder, value, n):
    """<n x T> with every lane ``value``."""
    vt = _vec(value.type, n)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(_vec(_I32, n), [0] * n))


def _lanes(builder, v, first, n):
    """Lanes first .. first + n - 1 of v as an <n x T>."""
    return builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined),
                                  ir.Constant(_vec(_I32, n), list(range(first, first + n))))


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _x86(builder, name, ret, *args):
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(ret, [a.type for a in args]), name)
    return builder.call(fn, list(args))


def _bytes(builder, v):
    """<4 x i32> lanes in [0, 255] as <4 x i8>.  On x86 by the SSE2 packs (LLVM would
    otherwise fold the truncation into the store, a truncating store that AVX-512
    CPUs run slowly); elsewhere a plain truncation."""
    if not _X86:
        return builder.trunc(v, _vec(_I8, 4))
    w = _x86(builder, "llvm.x86.sse2.packssdw.128", _vec(ir.IntType(16), 8), v, v)
    b = _x86(builder, "llvm.x86.sse2.packuswb.128", _vec(_I8, 16), w, w)
    return builder.shuffle_vector(b, ir.Constant(b.type, ir.Undefined),
                                  ir.Constant(_vec(_I32, 4), [0, 1, 2, 3]))


def _fma(builder, a, b, c):
    """a * b + c, one rounding per lane (llvm.fma)."""
    name = f"llvm.fma.v{a.type.count}{'f64' if a.type.element == ir.DoubleType() else 'f32'}"
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(a.type, [a.type] * 3), name)
    return builder.call(fn, [a, b, c])


def _load(builder, base, offset, vt, live):
    """Unaligned vector load of ``vt`` at element ``offset`` of the pointer ``base``; with
    ``live`` < the lane count, only the first ``live`` lanes are read (llvm.masked.load),
    the others are 0."""
    ptr = builder.bitcast(builder.gep(base, [offset], inbounds=True), ir.PointerType(vt))
    if live == vt.count:
        return builder.load(ptr, align=1)
    elem = "f32" if vt.element == _F32 else f"i{vt.element.width}"
    name = f"llvm.masked.load.v{vt.count}{elem}.p0"
    fn = builder.module.globals.get(name)
    mask_t = _vec(_I1, vt.count)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(vt, [ptr.type, _I32, mask_t, vt]), name)
    mask = ir.Constant(mask_t, [1] * live + [0] * (vt.count - live))
    return builder.call(fn, [ptr, ir.Constant(_I32, 1), mask, ir.Constant(vt, None)])


def _store(builder, value, base, offset, C, spill):
    """Store lanes 0 .. C - 1 of ``value`` at element ``offset`` of ``base``; with
    ``spill`` (or C = 4) all 4 lanes in one vector store."""
    if spill or C == 4:
        ptr = builder.gep(base, [offset], inbounds=True)
        builder.store(value, builder.bitcast(ptr, ir.PointerType(value.type)), align=1)
        return
    for c in range(C):
        ptr = builder.gep(base, [builder.add(offset, ir.Constant(offset.type, c))], inbounds=True)
        builder.store(builder.extract_element(value, ir.Constant(_I32, c)), ptr)


_F64 = ir.DoubleType()
_I16 = ir.IntType(16)


def _lerp(builder, sdata, b, row, fx, gx, fy, gy, C, live, taps, wide):
    """The two tap rows at b and b + row (``taps`` vectors, converted to ``wide`` floats),
    blended vertically then horizontally: lanes 0 .. C - 1 of the 4-lane result.

        l = (1 - fy) top + fy bot
        v = (1 - fx) l[:C] + fx l[C:2C]
    """
    top = _load(builder, sdata, b, taps, live)
    bot = _load(builder, sdata, builder.add(b, row), taps, live)
    if taps.element != wide:
        top = builder.uitofp(top, _vec(wide, LANES))
        bot = builder.uitofp(bot, _vec(wide, LANES))
    l = _fma(builder, _splat(builder, fy, LANES), bot, builder.fmul(_splat(builder, gy, LANES), top))
    return _fma(builder, _splat(builder, fx, 4), _lanes(builder, l, C, 4),
                builder.fmul(_splat(builder, gx, 4), _lanes(builder, l, 0, 4)))


def _blend_f32(builder, sdata, odata, b, row, ob, fx, gx, fy, gy, C, spill, live):
    v = _lerp(builder, sdata, b, row, fx, gx, fy, gy, C, live, _vec(_F32, LANES), _F32)
    _store(builder, v, odata, ob, C, spill)


def _blend_u8(builder, sdata, odata, b, row, ob, fx, gx, fy, gy, C, spill, live):
    # the float32 blend, then floor(v + 1/2): v lies in [0, 255] (a convex combination
    # up to rounding), so truncation is floor
    v = _lerp(builder, sdata, b, row, fx, gx, fy, gy, C, live, _vec(_I8, LANES), _F32)
    v = builder.fptosi(builder.fadd(v, ir.Constant(_vec(_F32, 4), [0.5] * 4)), _vec(_I32, 4))
    _store(builder, _bytes(builder, v), odata, ob, C, spill)


def _blend_u16(builder, sdata, odata, b, row, ob, fx, gx, fy, gy, C, spill, live):
    # the float64 blend of the scalar path, then floor(v + 1/2), saturated to [0, 65535]
    v = _lerp(builder, sdata, b, row, fx, gx, fy, gy, C, live, _vec(_I16, LANES), _F64)
    f64x4 = _vec(_F64, 4)
    v = builder.fadd(v, ir.Constant(f64x4, [0.5] * 4))
    lo = ir.Constant(f64x4, [0.0] * 4)
    hi = ir.Constant(f64x4, [65535.0] * 4)
    v = builder.select(builder.fcmp_ordered(">", v, lo), v, lo)
    v = builder.select(builder.fcmp_ordered("<", v, hi), v, hi)
    _store(builder, builder.trunc(builder.fptosi(v, _vec(_I32, 4)), _vec(_I16, 4)), odata, ob, C, spill)


def _literal_pixel(C, spill, exact):
    """Whether a pixel intrinsic's arguments are what it compiles for: C a literal 3 or 4,
    spill and exact literal booleans."""
    return (isinstance(C, types.IntegerLiteral) and C.literal_value in (3, 4)
            and isinstance(spill, types.BooleanLiteral) and isinstance(exact, types.BooleanLiteral))


@intrinsic(prefer_literal=True)
def blend_pixel(typingctx, s, o, b, row, ob, fx, gx, fy, gy, C, spill, exact):
    """o[ob + c] = bilinear blend of the 2 x 2 taps at flat offsets b, b + C, b + row,
    b + row + C of s (channel c), for c < C (3 or 4, a literal).

    fx, fy: the fractions, gx = 1 - fx, gy = 1 - fy; s and o both float32 or both
    uint8 (float32 weights, blended in float32, uint8 rounded to nearest, ties up), or
    both uint16 (float64 weights, blended in float64 as the reference does, rounded
    to nearest, ties up, and saturated).  spill (a
    literal bool): a 3-channel store may write o[ob + 3].  exact (a literal bool):
    read only the taps (masked loads), for pixels whose full 8-lane loads could
    pass the end of s.
    """
    if not _literal_pixel(C, spill, exact):
        return None
    if s.dtype == types.float32 and o.dtype == types.float32:
        blend = _blend_f32
    elif s.dtype == types.uint8 and o.dtype == types.uint8:
        blend = _blend_u8
    elif s.dtype == types.uint16 and o.dtype == types.uint16:
        blend = _blend_u16
    else:
        return None
    weight = types.float64 if s.dtype == types.uint16 else types.float32
    nc = C.literal_value
    spills = spill.literal_value
    live = 2 * nc if exact.literal_value else LANES
    sig = types.void(s, o, types.intp, types.intp, types.intp, *([weight] * 4), C, spill, exact)

    def codegen(context, builder, signature, args):
        sdata = context.make_array(signature.args[0])(context, builder, args[0]).data
        odata = context.make_array(signature.args[1])(context, builder, args[1]).data
        blend(builder, sdata, odata, *args[2:9], nc, spills, live)
        return context.get_dummy_value()

    return sig, codegen


def _smin(builder, a, b):
    return builder.select(builder.icmp_signed("<", a, b), a, b)


def _smax(builder, a, b):
    return builder.select(builder.icmp_signed(">", a, b), a, b)


def _axis_taps(builder, start, step, top, last):
    """Fixed-point coordinates start + k step (k = 0 .. 7), clamped into [0, top]: the
    first tap index floor(.) (at most ``last``) and the fraction, in units of 2**-32."""
    i64x8 = _vec(_I64, LANES)
    lanes = ir.Constant(i64x8, list(range(LANES)))
    v = builder.add(_splat(builder, start, LANES), builder.mul(lanes, _splat(builder, step, LANES)))
    v = _smin(builder, _smax(builder, v, ir.Constant(i64x8, [0] * LANES)), _splat(builder, top, LANES))
    k = _smin(builder, builder.ashr(v, ir.Constant(i64x8, [32] * LANES)), _splat(builder, last, LANES))
    return k, builder.sub(v, builder.shl(k, ir.Constant(i64x8, [32] * LANES)))


def _weights(builder, frac):
    """Fractions in units of 2**-32 as float32, rounded to 2**-24 (a 24-bit integer
    converts exactly)."""
    i64x8 = _vec(_I64, LANES)
    q = builder.ashr(builder.add(frac, ir.Constant(i64x8, [1 << 7] * LANES)), ir.Constant(i64x8, [8] * LANES))
    f = builder.sitofp(builder.trunc(q, _vec(_I32, LANES)), _vec(_F32, LANES))
    return builder.fmul(f, ir.Constant(_vec(_F32, LANES), [2.0**-24] * LANES))


@intrinsic
def span_taps(typingctx, offs, w, t, X, DX, Y, DY, xtop, ytop, xlast, ylast, base, row, C):
    """Eight pixels of an interior span at once (k = 0 .. 7): from the fixed-point
    coordinates (X + k DX, Y + k DY) (32 fraction bits) clamped into [0, xtop] x
    [0, ytop], the first tap (x0, y0) = (min(floor x, xlast), min(floor y, ylast)),
    offs[t + k] = base + y0 row + x0 C, and into the rows of the float32 array ``w``
    the fractions w[0] = fx = x - x0, w[1] = fy = y - y0, w[2] = 1 - fx,
    w[3] = 1 - fy.  Needs t + 8 <= the arrays' width; ``w`` C-contiguous, 4 rows.
    """
    if not (isinstance(offs, types.Array) and offs.dtype == types.int64 and isinstance(w, types.Array)
            and w.ndim == 2 and w.layout == "C" and w.dtype == types.float32):
        return None
    sig = types.void(offs, w, types.intp, *([types.int64] * 11))

    def codegen(context, builder, signature, args):
        po = context.make_array(signature.args[0])(context, builder, args[0]).data
        wary = context.make_array(signature.args[1])(context, builder, args[1])
        width = builder.extract_value(wary.shape, 1)
        t, X, DX, Y, DY, xtop, ytop, xlast, ylast, base, row, C = args[2:]
        x0, fx = _axis_taps(builder, X, DX, xtop, xlast)
        y0, fy = _axis_taps(builder, Y, DY, ytop, ylast)
        # offset = base + y0 row + x0 C
        off = builder.add(_splat(builder, base, LANES),
                          builder.add(builder.mul(y0, _splat(builder, row, LANES)),
                                      builder.mul(x0, _splat(builder, C, LANES))))
        wx = _weights(builder, fx)
        wy = _weights(builder, fy)
        one = ir.Constant(_vec(_F32, LANES), [1.0] * LANES)
        _store_lanes(builder, po, t, off)
        for r, val in enumerate((wx, wy, builder.fsub(one, wx), builder.fsub(one, wy))):
            _store_lanes(builder, wary.data, builder.add(t, builder.mul(width, ir.Constant(_I64, r))), val)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def span_points(typingctx, offs, w, t, j, ux, dux, uy, duy, xlast, ylast, base, row, C):
    """Eight pixels of an interior span at once (k = 0 .. 7) in float64: the point
    (ux + (j + k) dux, uy + (j + k) duy) (a multiply-add LLVM may fuse) clamped
    into [0, xlast + 1] x [0, ylast + 1], the first tap (x0, y0) = (min(floor x, xlast),
    min(floor y, ylast)), offs[t + k] = base + y0 row + x0 C, and into the rows of the
    float64 array ``w`` the fractions w[0] = fx = x - x0, w[1] = fy = y - y0,
    w[2] = 1 - fx, w[3] = 1 - fy.  Needs t + 8 <= the arrays' width; ``w`` C-contiguous,
    4 rows.
    """
    if not (isinstance(offs, types.Array) and offs.dtype == types.int64 and isinstance(w, types.Array)
            and w.ndim == 2 and w.layout == "C" and w.dtype == types.float64):
        return None
    sig = types.void(offs, w, types.intp, types.int64, *([types.float64] * 4), *([types.int64] * 5))

    def codegen(context, builder, signature, args):
        po = context.make_array(signature.args[0])(context, builder, args[0]).data
        wary = context.make_array(signature.args[1])(context, builder, args[1])
        width = builder.extract_value(wary.shape, 1)
        t, j, ux, dux, uy, duy, xlast, ylast, base, row, C = args[2:]
        lanes = ir.Constant(_vec(_I64, LANES), list(range(LANES)))
        jf = builder.sitofp(builder.add(_splat(builder, j, LANES), lanes), _vec(_F64, LANES))
        x0, fx = _axis_points(builder, jf, ux, dux, xlast)
        y0, fy = _axis_points(builder, jf, uy, duy, ylast)
        off = builder.add(_splat(builder, base, LANES),
                          builder.add(builder.mul(y0, _splat(builder, row, LANES)),
                                      builder.mul(x0, _splat(builder, C, LANES))))
        one = ir.Constant(fx.type, [1.0] * LANES)
        _store_lanes(builder, po, t, off)
        for r, val in enumerate((fx, fy, builder.fsub(one, fx), builder.fsub(one, fy))):
            _store_lanes(builder, wary.data, builder.add(t, builder.mul(width, ir.Constant(_I64, r))), val)
        return context.get_dummy_value()

    return sig, codegen


def _axis_points(builder, jf, u, du, last):
    """v = min(max(u + jf du, 0), last + 1) (the multiply-add contractible), its first tap
    min(floor v, last) and the fraction v - tap, for float64 lanes jf."""
    f64x8 = _vec(_F64, LANES)
    contract = ("contract",)
    v = builder.fadd(_splat(builder, u, LANES), builder.fmul(jf, _splat(builder, du, LANES), flags=contract),
                     flags=contract)
    zero = ir.Constant(f64x8, [0.0] * LANES)
    top = builder.sitofp(_splat(builder, builder.add(last, ir.Constant(_I64, 1)), LANES), f64x8)
    v = builder.select(builder.fcmp_ordered("<", v, zero), zero, v)
    v = builder.select(builder.fcmp_ordered(">", v, top), top, v)
    k = _smin(builder, builder.fptosi(v, _vec(_I64, LANES)), _splat(builder, last, LANES))
    return k, builder.fsub(v, builder.sitofp(k, f64x8))


def _store_lanes(builder, base, index, value):
    """Store the vector ``value`` at element ``index`` of ``base`` (unaligned)."""
    ptr = builder.bitcast(builder.gep(base, [index], inbounds=True), ir.PointerType(value.type))
    builder.store(value, ptr, align=1)


def _points_signature(xs, ys, w, offs, inside):
    """The signature shared by :func:`point_taps` and :func:`cubic_points` (None for other
    argument types): float64 point rows, int64 offsets, a C-contiguous 2-D float32 or
    float64 weight scratch, uint8 inside flags."""
    if not (isinstance(xs, types.Array) and xs.dtype == types.float64 and ys == xs
            and isinstance(w, types.Array) and w.ndim == 2 and w.layout == "C"
            and w.dtype in (types.float32, types.float64)
            and isinstance(offs, types.Array) and offs.dtype == types.int64
            and isinstance(inside, types.Array) and inside.dtype == types.uint8):
        return None
    return types.void(xs, ys, types.intp, types.int64, types.int64, types.int64, types.int64, types.int64,
                      offs, w, inside, types.intp)


def _eight_points(context, builder, signature, args, lo, reach, weights):
    """The body of :func:`point_taps` and :func:`cubic_points`: points k = 0 .. 7 with
    lo <= x < W - reach and lo <= y < H - reach (ordered comparisons: false for NaN) are
    inside; their first tap's offset base + (floor(y) - lo) row + (floor(x) - lo) C goes
    to offs, the rows ``weights(fx, fy)`` of the float64 fractions (rounded once to a
    float32 scratch where they are float64) to w, the flags to inside."""
    px, py = (context.make_array(ty)(context, builder, a).data
              for ty, a in zip(signature.args[:2], args[:2]))
    j, W, H, base, row, C = args[2:8]
    po = context.make_array(signature.args[8])(context, builder, args[8]).data
    wary = context.make_array(signature.args[9])(context, builder, args[9])
    pin = context.make_array(signature.args[10])(context, builder, args[10]).data
    t = args[11]
    f64x8 = _vec(ir.DoubleType(), LANES)
    i64x8 = _vec(_I64, LANES)
    x = builder.load(builder.bitcast(builder.gep(px, [j], inbounds=True), ir.PointerType(f64x8)), align=8)
    y = builder.load(builder.bitcast(builder.gep(py, [j], inbounds=True), ir.PointerType(f64x8)), align=8)
    low = ir.Constant(f64x8, [float(lo)] * LANES)
    xhi = builder.sitofp(_splat(builder, builder.sub(W, ir.Constant(_I64, reach)), LANES), f64x8)
    yhi = builder.sitofp(_splat(builder, builder.sub(H, ir.Constant(_I64, reach)), LANES), f64x8)
    okx = builder.and_(builder.fcmp_ordered(">=", x, low), builder.fcmp_ordered("<", x, xhi))
    oky = builder.and_(builder.fcmp_ordered(">=", y, low), builder.fcmp_ordered("<", y, yhi))
    ok = builder.and_(okx, oky)
    # points outside are replaced by lo before the conversions (which they would overflow)
    x = builder.select(ok, x, low)
    y = builder.select(ok, y, low)
    x0 = builder.fptosi(x, i64x8)  # = floor: x >= lo >= 0
    y0 = builder.fptosi(y, i64x8)
    fx = builder.fsub(x, builder.sitofp(x0, f64x8))
    fy = builder.fsub(y, builder.sitofp(y0, f64x8))
    if lo:
        shift = _splat(builder, ir.Constant(_I64, lo), LANES)
        x0 = builder.sub(x0, shift)
        y0 = builder.sub(y0, shift)
    off = builder.add(_splat(builder, base, LANES),
                      builder.add(builder.mul(y0, _splat(builder, row, LANES)),
                                  builder.mul(x0, _splat(builder, C, LANES))))
    _store_lanes(builder, po, t, off)
    wt = _F32 if signature.args[9].dtype == types.float32 else ir.DoubleType()
    width = builder.extract_value(wary.shape, 1)
    for r, val in enumerate(weights(fx, fy)):
        if wt == _F32 and val.type.element != _F32:
            val = builder.fptrunc(val, _vec(_F32, LANES))
        _store_lanes(builder, wary.data, builder.add(t, builder.mul(width, ir.Constant(_I64, r))), val)
    _store_lanes(builder, pin, t, builder.zext(ok, _vec(_I8, LANES)))
    return context.get_dummy_value()


@intrinsic
def point_taps(typingctx, xs, ys, j, W, H, base, row, C, offs, w, inside, t):
    """Eight arbitrary points at once (k = 0 .. 7): pixel point (xs[j + k], ys[j + k])
    (float64) has all four bilinear taps inside a W x H image when 0 <= x < W - 1
    and 0 <= y < H - 1 (false for NaN); then inside[t + k] = 1, offs[t + k] =
    base + floor(y) row + floor(x) C, and the rows of ``w`` get the fractions and
    their complements as in :func:`span_taps` (x - floor(x) in float64; a float32
    ``w`` gets it rounded once to float32).  Points outside get inside[t + k] = 0 and
    unspecified offsets and weights.  Needs j + 8 <= len(xs), t + 8 <= the scratch width.
    """
    sig = _points_signature(xs, ys, w, offs, inside)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        def weights(fx, fy):  # the fractions and their complements
            if signature.args[9].dtype == types.float32:  # (1 - fx after rounding fx once)
                fx = builder.fptrunc(fx, _vec(_F32, LANES))
                fy = builder.fptrunc(fy, _vec(_F32, LANES))
            one = ir.Constant(fx.type, [1.0] * LANES)
            return fx, fy, builder.fsub(one, fx), builder.fsub(one, fy)

        return _eight_points(context, builder, signature, args, 0, 1, weights)

    return sig, codegen


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint that arr[idx] will be read soon (llvm.prefetch, read, high locality)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.void(arr, types.intp)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]], inbounds=True), ir.PointerType(_I8))
        name = "llvm.prefetch.p0"
        fn = builder.module.globals.get(name)
        if fn is None:
            fnty = ir.FunctionType(ir.VoidType(), [ptr.type, _I32, _I32, _I32])
            fn = ir.Function(builder.module, fnty, name)
        builder.call(fn, [ptr, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return sig, codegen


def _cubic_weights(builder, t):
    """The four cubic-convolution weights of the fraction vector t (float64 lanes), in
    exactly the operations and order of ``generic.cubic_weights`` (bit-identical)."""
    a = CUBIC_A
    vt = t.type

    def k(c):
        return ir.Constant(vt, [c] * vt.count)

    mul, add, sub = builder.fmul, builder.fadd, builder.fsub
    d0 = add(t, k(1.0))
    d3 = sub(k(2.0), t)
    u = sub(k(1.0), t)

    def outer(d):  # ((a d - 5a) d + 8a) d - 4a
        return sub(mul(add(mul(sub(mul(k(a), d), k(5.0 * a)), d), k(8.0 * a)), d), k(4.0 * a))

    def inner(d):  # ((a + 2) d - (a + 3)) d d + 1
        return add(mul(mul(sub(mul(k(a + 2.0), d), k(a + 3.0)), d), d), k(1.0))

    return outer(d0), inner(t), inner(u), outer(d3)


@intrinsic
def cubic_points(typingctx, xs, ys, j, W, H, base, row, C, offs, w, inside, t):
    """Eight bicubic points at once (k = 0 .. 7), the tap pass of the bicubic rows: pixel
    point (xs[j + k], ys[j + k]) (float64) has all 16 taps inside a W x H image when
    1 <= x < W - 2 and 1 <= y < H - 2 (false for NaN); then inside[t + k] = 1,
    offs[t + k] = base + (floor(y) - 1) row + (floor(x) - 1) C (the first tap), and
    rows 0-3 of ``w`` get the x weights, rows 4-7 the y weights
    (``generic.cubic_weights`` of the fractions, in float64, rounded once to a float32
    ``w``).  Points outside get inside[t + k] = 0 and unspecified offsets and weights.
    Needs j + 8 <= len(xs), t + 8 <= the scratch width."""
    sig = _points_signature(xs, ys, w, offs, inside)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        def weights(fx, fy):
            return _cubic_weights(builder, fx) + _cubic_weights(builder, fy)

        return _eight_points(context, builder, signature, args, 1, 2, weights)

    return sig, codegen


def _fmax(builder, a, b):
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


def _fmin(builder, a, b):
    return builder.select(builder.fcmp_ordered("<", a, b), a, b)


@intrinsic(prefer_literal=True)
def cubic_pixel(typingctx, s, o, b, row, ob, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, C, spill, exact):
    """o[ob + c] = sum_a wy_a sum_k wx_k s[b + a row + k C + c] for c < C (3 or 4, a literal):
    the 4 x 4 taps of a bicubic pixel, read as four rows of 4 C contiguous values (one
    16-lane vector each), combined vertically (four fused multiply-adds over 16 lanes),
    then horizontally.  float32 weights; s and o uint8 (the taps converted 16 at once;
    the result rounded to nearest, ties up, and saturated to [0, 255]; float32 pixels
    use :func:`cubic_pixel_taps`).  spill, exact: as in :func:`blend_pixel` (a
    3-channel row load reads 4 values past its 12 taps)."""
    if not _literal_pixel(C, spill, exact):
        return None
    if not (s.dtype == o.dtype == types.uint8):
        return None
    nc = C.literal_value
    spills = spill.literal_value
    live = 4 * nc if exact.literal_value else 16
    sig = types.void(s, o, types.intp, types.intp, types.intp, *([types.float32] * 8), C, spill, exact)

    def codegen(context, builder, signature, args):
        sdata = context.make_array(signature.args[0])(context, builder, args[0]).data
        odata = context.make_array(signature.args[1])(context, builder, args[1]).data
        b, row, ob = args[2:5]
        wx = args[5:9]
        wy = args[9:13]
        f32x16 = _vec(_F32, 16)
        acc = None
        for a in range(4):
            off = builder.add(b, builder.mul(row, ir.Constant(row.type, a)))
            taps = builder.uitofp(_load(builder, sdata, off, _vec(_I8, 16), live), f32x16)
            w = _splat(builder, wy[a], 16)
            # r = sum_a wy_a row_a, over the 4 C values of each tap row
            acc = builder.fmul(w, taps) if acc is None else _fma(builder, w, taps, acc)
        v = None
        for k in range(4):
            part = _lanes(builder, acc, k * nc, 4)
            w = _splat(builder, wx[k], 4)
            # v_c = sum_k wx_k r[k C + c]
            v = builder.fmul(w, part) if v is None else _fma(builder, w, part, v)
        v = builder.fadd(v, ir.Constant(_vec(_F32, 4), [0.5] * 4))
        v = _fmin(builder, _fmax(builder, v, ir.Constant(_vec(_F32, 4), [0.0] * 4)),
                  ir.Constant(_vec(_F32, 4), [255.0] * 4))
        v = _bytes(builder, builder.fptosi(v, _vec(_I32, 4)))
        _store(builder, v, odata, ob, nc, spills)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def cubic_pixel_taps(typingctx, s, o, b, row, ob, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, C, spill, exact):
    """o[ob + c] = sum_a wy_a (sum_k wx_k s[b + a row + k C + c]) for c < C (3 or 4, a
    literal), float32: each tap's C channels one 4-lane vector (16 loads), weighted along
    each tap row, then the four rows down the column, every sum left to right with one
    rounding per product and per sum.  Those are the operations of the unrolled scalar
    blend (``generic._cubic_scalar``) lane for lane, so the result is bit-identical to it.
    spill: as in :func:`blend_pixel`; exact: every load reads only its C values (a
    3-channel tap load otherwise reads one value past them)."""
    if not _literal_pixel(C, spill, exact):
        return None
    if not (s.dtype == o.dtype == types.float32):
        return None
    nc = C.literal_value
    spills = spill.literal_value
    live = nc if exact.literal_value else 4
    sig = types.void(s, o, types.intp, types.intp, types.intp, *([types.float32] * 8), C, spill, exact)

    def codegen(context, builder, signature, args):
        sdata = context.make_array(signature.args[0])(context, builder, args[0]).data
        odata = context.make_array(signature.args[1])(context, builder, args[1]).data
        b, row, ob = args[2:5]
        wx = [_splat(builder, w, 4) for w in args[5:9]]
        wy = [_splat(builder, w, 4) for w in args[9:13]]
        f32x4 = _vec(_F32, 4)
        v = None
        for a in range(4):
            start = builder.add(b, builder.mul(row, ir.Constant(row.type, a)))
            r = None
            for k in range(4):
                tap = _load(builder, sdata, builder.add(start, ir.Constant(row.type, k * nc)), f32x4, live)
                # r = wx_0 t_0 + wx_1 t_1 + wx_2 t_2 + wx_3 t_3 (no fused multiply-add)
                r = builder.fmul(wx[k], tap) if r is None else builder.fadd(r, builder.fmul(wx[k], tap))
            # v = wy_0 r_0 + wy_1 r_1 + wy_2 r_2 + wy_3 r_3
            v = builder.fmul(wy[a], r) if v is None else builder.fadd(v, builder.fmul(wy[a], r))
        _store(builder, v, odata, ob, nc, spills)
        return context.get_dummy_value()

    return sig, codegen
