"""One module per Bluetooth SIG service, each with ``decode_<char>`` and ``encode_<char>``.

Each module's docstring carries its wire-format table (oralb-ble ``wire-format.md``, moved next to
the code). Decoders are strict: the flags decide the required length before anything is read,
missing bytes are an error, reserved flag bits and trailing bytes are ignored, reserved
enumeration values are returned raw. Encoders write exactly what they are given or raise
:class:`devices.errors.EncodeError`.
"""
