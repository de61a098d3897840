"""Batch work behind ``fastwarp warp``, :mod:`fastwarp.folder`, :mod:`fastwarp.pipeline`
and :mod:`fastwarp.io`: one file's job (``filework``), the memory budget
(``budget``), the header sniffer (``sniff``), the PNG writer (``png``) and the
prefetcher (``prefetch``)."""
