"""The CodeDeploy nouns shared by every layer.

No I/O, and no imports from the rest of opendeploy.
"""
