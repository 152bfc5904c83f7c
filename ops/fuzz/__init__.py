"""Coverage-guided fuzzing of every decoder (atheris / libFuzzer).

``ops/fuzz/targets/<name>.py`` holds one target per decoder with ``test_one_input(data)``;
the contract each asserts is "only the documented error type escapes the decoder, and what
decodes re-encodes". ``ops/fuzz/corpus.py`` builds seed corpora from the golden vectors and
captures; ``python -m ops.fuzz`` runs targets in subprocesses (``ops/fuzz/driver.py``).
"""
