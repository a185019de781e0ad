"""nnaccel: the Deep Compression front end.

``loaders`` (weight files) → ``prune`` → ``train`` (masked retraining, centroid
fine-tuning) → ``kmeans``/``share`` (weight sharing) → ``huffman``/``storage`` (the
paper's accounting) → ``fixedpoint``/``int8`` (engine number formats) → ``image``
(memory images + manifest) → ``run`` (golden models or RTL). ``compress`` ties the stages
together; ``commands`` adds ``nnaccel compress/report/run``; ``digits`` is the project's
real network. ``csc`` (interleaved CSC for the EIE engine) belongs to the EIE engine.
"""
