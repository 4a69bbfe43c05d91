"""The built-in function host: the Lambda API subset deployments and deploy scripts use, and
Python functions run as real processes under AWS's runtime interface client (``awslambdaric``)
against a Runtime API this server implements.

- :mod:`.names`: function names, ARNs and qualifiers (pure);
- :mod:`.routing`: which version an alias invocation runs (pure);
- :mod:`.service`: the control operations (create, publish, aliases …) over the store;
- :mod:`.runtime_api`: the Runtime API one function process talks to;
- :mod:`.host`: warm process pools, timeouts, memory bounds, invocation;
- :mod:`.client`: what the server's own Lambda client needs to reach this host.
"""
