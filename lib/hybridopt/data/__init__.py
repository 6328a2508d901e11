"""From request logs to a training table (stages 02 and 03).

In pipeline order: `contract` (the request-log contract and the project's vocabulary), `reader`
(stream, repair or quarantine every line), `legacy` (the thesis logs' layout), `ingest`, `audit`,
`pairing`, `cost`, `labels`, `features` (the 14 leak-free features), `gates`, `table` (the pair
table's columns) and `preprocess` (all of it, written to data/<profile>/processed).

This __init__ imports nothing: the router's Lambda package ships `contract` and `features` alone.
"""
