"""One bilinear output pixel of 3 or 4 channels as a few SIMD instructions.

A pixel's two horizontally adjacent taps are one contiguous run of memory
(``2 C`` values), so the 2 x 2 taps of a 3- or 4-channel pixel are two vector
loads, one per tap row.  :func:`blend_pixel` is an LLVM-level intrinsic that
loads the two rows, blends them vertically and then horizontally, and stores
the C channels:

    l_k = (1 - fy) top_k + fy bot_k            (k < 2C: both taps of each row)
    v_c = (1 - fx) l_c + fx l_{C + c}          (c < C)

float32 images blend in float32 (fused multiply-adds); uint8 images in exact
integers with weights in units of 2**-20 (``span.WEIGHT_BITS``), which gives
the same numbers as :func:`span.lerp_channels_int`'s horizontal-first order
(the integer arithmetic is exact, so the order cannot change a bit):

    l = top 2**20 + fy (bot - top)              (int32: below 2**29)
    v = floor((l_c 2**20 + fx (l_{C+c} - l_c)) / 2**40 + 1/2)   (int64)

The vectors are generic LLVM vectors (8 lanes), which LLVM lowers to the
machine's own SIMD (SSE, AVX2, AVX-512, NEON): no CPU-specific code here.

Bounds: a 4-channel pixel's loads are its own 2 x 2 taps exactly.  A
3-channel pixel loads 8 values per row, 2 past its taps: the caller passes
``room`` (the flat size of the image array) and the pixel falls back to the
scalar blend when those 2 values would lie past the end.  Stores write exactly
C channels unless ``spill`` is True, when a 3-channel pixel writes a fourth
value into the next pixel's first channel (one store instead of three); the
caller must write that next pixel afterwards, on the same thread.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()

LANES = 8  # one tap row of a pixel (2 C values) fits in 8 lanes for C <= 4
# l_c 2**20 + fx (l_{C+c} - l_c) is the value times 2**40: + 2**39 rounds half up
_WEIGHT_BITS = 20
_HALF = 1 << (2 * _WEIGHT_BITS - 1)


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


def _fma(builder, a, b, c):
    """a * b + c, one rounding per lane (llvm.fma)."""
    name = f"llvm.fma.v{a.type.count}f32"
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


def _blend_f32(builder, sdata, odata, b, row, ob, fx, fy, C, spill, live):
    v8 = _vec(_F32, LANES)
    top = _load(builder, sdata, b, v8, live)
    bot = _load(builder, sdata, builder.add(b, row), v8, live)
    one = ir.Constant(_F32, 1.0)
    # l = (1 - fy) top + fy bot
    l = _fma(builder, _splat(builder, fy, LANES), bot,
             builder.fmul(_splat(builder, builder.fsub(one, fy), LANES), top))
    # v = (1 - fx) l[:C] + fx l[C:2C]
    v = _fma(builder, _splat(builder, fx, 4), _lanes(builder, l, C, 4),
             builder.fmul(_splat(builder, builder.fsub(one, fx), 4), _lanes(builder, l, 0, 4)))
    _store(builder, v, odata, ob, C, spill)


def _blend_u8(builder, sdata, odata, b, row, ob, fx, fy, C, spill, live):
    i32x8 = _vec(_I32, LANES)
    i64x4 = _vec(_I64, 4)
    top = builder.zext(_load(builder, sdata, b, _vec(_I8, LANES), live), i32x8)
    bot = builder.zext(_load(builder, sdata, builder.add(b, row), _vec(_I8, LANES), live), i32x8)
    # l = top 2**20 + fy (bot - top), exact in int32
    l = builder.add(builder.shl(top, _splat(builder, ir.Constant(_I32, _WEIGHT_BITS), LANES)),
                    builder.mul(_splat(builder, builder.trunc(fy, _I32), LANES), builder.sub(bot, top)))
    left = builder.sext(_lanes(builder, l, 0, 4), i64x4)
    right = builder.sext(_lanes(builder, l, C, 4), i64x4)
    # v = (left 2**20 + fx (right - left) + 2**39) >> 40, exact in int64
    v = builder.add(builder.shl(left, _splat(builder, ir.Constant(_I64, _WEIGHT_BITS), 4)),
                    builder.mul(_splat(builder, fx, 4), builder.sub(right, left)))
    v = builder.lshr(builder.add(v, _splat(builder, ir.Constant(_I64, _HALF), 4)),
                     _splat(builder, ir.Constant(_I64, 2 * _WEIGHT_BITS), 4))
    _store(builder, builder.trunc(v, _vec(_I8, 4)), odata, ob, C, spill)


@intrinsic(prefer_literal=True)
def blend_pixel(typingctx, s, o, b, row, ob, fx, fy, C, spill, exact):
    """o[ob + c] = bilinear blend of the 2 x 2 taps at flat offsets b, b + C, b + row,
    b + row + C of s (channel c), for c < C (3 or 4, a literal).

    float32 s and o: fx, fy float32 fractions.  uint8: fx, fy int64 fractions in
    units of 2**-20.  spill (a literal bool): a 3-channel store may write o[ob + 3].
    exact (a literal bool): read only the taps (masked loads), for pixels whose
    full 8-lane loads would pass the end of s.
    """
    if not (isinstance(C, types.IntegerLiteral) and C.literal_value in (3, 4)):
        return None
    if not (isinstance(spill, types.BooleanLiteral) and isinstance(exact, types.BooleanLiteral)):
        return None
    if s.dtype == types.float32 and o.dtype == types.float32:
        blend, weight = _blend_f32, types.float32
    elif s.dtype == types.uint8 and o.dtype == types.uint8:
        blend, weight = _blend_u8, types.int64
    else:
        return None
    nc = C.literal_value
    spills = spill.literal_value
    live = 2 * nc if exact.literal_value else LANES
    sig = types.void(s, o, types.intp, types.intp, types.intp, weight, weight, C, spill, exact)

    def codegen(context, builder, signature, args):
        sdata = context.make_array(signature.args[0])(context, builder, args[0]).data
        odata = context.make_array(signature.args[1])(context, builder, args[1]).data
        blend(builder, sdata, odata, args[2], args[3], args[4], args[5], args[6], nc, spills, live)
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


def _weights(builder, frac, elem):
    """Fractions in units of 2**-32 as float32 (rounded to 2**-24: a 24-bit integer
    converts exactly) or as int64 in units of 2**-20, rounded half up."""
    i64x8 = _vec(_I64, LANES)
    if elem == _F32:
        q = builder.ashr(builder.add(frac, ir.Constant(i64x8, [1 << 7] * LANES)), ir.Constant(i64x8, [8] * LANES))
        f = builder.sitofp(builder.trunc(q, _vec(_I32, LANES)), _vec(_F32, LANES))
        return builder.fmul(f, ir.Constant(_vec(_F32, LANES), [2.0**-24] * LANES))
    shift = 32 - _WEIGHT_BITS
    return builder.ashr(builder.add(frac, ir.Constant(i64x8, [1 << (shift - 1)] * LANES)),
                        ir.Constant(i64x8, [shift] * LANES))


@intrinsic
def span_taps(typingctx, offs, wx, wy, t, X, DX, Y, DY, xtop, ytop, xlast, ylast, base, row, C):
    """Eight pixels of an interior span at once (k = 0 .. 7): from the fixed-point
    coordinates (X + k DX, Y + k DY) (32 fraction bits) clamped into [0, xtop] x
    [0, ytop], the first tap (x0, y0) = (min(floor x, xlast), min(floor y, ylast)),
    offs[t + k] = base + y0 row + x0 C and the fractions x - x0, y - y0 in wx[t + k],
    wy[t + k]: float32 arrays get float32 fractions, int64 arrays int64 fractions in
    units of 2**-20 (``span.WEIGHT_BITS``).  Needs t + 8 <= the arrays' length.
    """
    if not (offs.dtype == types.int64 and wx == wy and wx.dtype in (types.float32, types.int64)):
        return None
    elem = _F32 if wx.dtype == types.float32 else _I64
    sig = types.void(offs, wx, wy, types.intp, *([types.int64] * 11))

    def codegen(context, builder, signature, args):
        po, px, py = (context.make_array(ty)(context, builder, a).data
                      for ty, a in zip(signature.args[:3], args[:3]))
        t, X, DX, Y, DY, xtop, ytop, xlast, ylast, base, row, C = args[3:]
        x0, fx = _axis_taps(builder, X, DX, xtop, xlast)
        y0, fy = _axis_taps(builder, Y, DY, ytop, ylast)
        # offset = base + y0 row + x0 C
        off = builder.add(_splat(builder, base, LANES),
                          builder.add(builder.mul(y0, _splat(builder, row, LANES)),
                                      builder.mul(x0, _splat(builder, C, LANES))))
        for ptr, val in ((po, off), (px, _weights(builder, fx, elem)), (py, _weights(builder, fy, elem))):
            dst = builder.bitcast(builder.gep(ptr, [t], inbounds=True), ir.PointerType(val.type))
            builder.store(val, dst, align=1)
        return context.get_dummy_value()

    return sig, codegen
