"""The lab notebook: timings and the experiments that chose defaults (see README.md here).

A package so that every script runs the same way, from the repository root:
`python -m bench.<kind>.<script>`.
"""
