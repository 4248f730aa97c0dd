"""`llava-audit export`: the records safe to train on, the re-fetch list, and their licences.

    select        pure: records + findings + verdicts in, kept and dropped (with reasons) out
    recovery      pure: which broken local images a source URL can restore (report and export)
    licence_table pure: each record's licence class, from the licence stage's verdict rows
    fingerprints  whether a published run still describes the inputs (stat, settings digest)
    sources       I/O: the records' source URLs as the URL stage read them
    layout        I/O: an input file's records as exact bytes, and a subset in the same layout
    cards         pure: LICENSES.md of an exported subset
    write         I/O: one dataset's output folder (writev from the input's bytes, background
                  threads), the manifest (atomic writes)
    exporter      the library call: reuse or run the audit, select, write (the CLI is thin)

Submodules are imported where needed: the runner uses fingerprints and sources only.
"""
