"""Loaders: the only code that opens dataset files.

Submodules by input: ``records`` (conversation JSON arrays, JSON Lines, metadata files, kind
detection), ``imageroots`` (image folders and zips, read in place), ``urlsources`` (URL lists from
metadata files, the headerless CC-3M TSV, or a configured column).
"""
