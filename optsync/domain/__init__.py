"""The pure core: identifiers, emails, opt-out rules, sync planning, retry policy.

Nothing in this package performs I/O or imports a framework; every decision that depends
on time takes ``now`` as an argument.
"""
