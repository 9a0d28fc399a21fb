"""The known datasets, one module each: its description, its ``fetch-data`` catalogue entry and its converter.

Importing this package (``dualseg.data`` does) registers every one; a new dataset is one more module imported here.
"""

from dualseg.data.datasets import acdc, cvc_clinicdb, drive, dsb2018, isbi2012, kvasir_seg  # noqa: F401
