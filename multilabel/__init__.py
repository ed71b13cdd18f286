"""Multi-label transfer learning on frozen image feature modules.

The top-level scripts (data_generation.py, retrain.py, label_image.py) parse flags and
call into this package; each module here holds one idea.
"""
