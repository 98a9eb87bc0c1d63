"""The job runner: claims jobs over HTTP and runs them on the machine it lives on.

This package imports only the standard library and httpx, never Django or the rest of
`obeya`: a runner machine has no Django and no database credentials.

- `executor`: run a job's script in its own process group, stream its output, stop it.
- `masking`: mask secret values (and their encodings) in the output stream.
- `workspace`: a fresh checkout per attempt; safe artifact extraction and packing.
- `client`, `main`: the HTTP protocol and the claim/run/report loop.

Errors raised here::

    Exception
    ├── ValueError                 a script line or variable that cannot be passed to bash
    └── WorkspaceError             checkout, cleanup or packing failed (message says why)
        └── UnsafeArchive          an archive member would escape its destination or limits
"""
