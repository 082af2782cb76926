"""The GPU proof in one prepared command for a lent H100/H200: script/gpu-wheels here, script/gpu-check there.

``__main__`` runs the stages (``stages``) each in a process of its own under its own time limit and judges
the results; ``wheels`` carries what the device's Python lacks.
"""
