"""The face engine: images, faces, templates, the camera and liveness, over plain numpy arrays.

Nothing in this package imports Flask; the services pass configuration values in.
"""
