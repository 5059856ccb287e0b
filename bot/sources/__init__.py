"""Talk to one service each: HTTP requests and parsing, no database code.

``pubmed`` (NCBI E-utilities), ``clinicaltrials`` (ClinicalTrials.gov API v2) and ``feeds``
(RSS/Atom) turn a service's answers into plain record dicts; ``http`` is the one request
chokepoint they share (spacing, retries, deadlines, size caps). Storing what they return is the
fetch stage's job (``bot.fetch``); every source is described once in ``bot.fetch.registry``.
"""
