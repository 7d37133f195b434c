"""Inputs: the file formats, their readers (branch map, PHYSLITE), the sample catalogue, manifests and the generator."""
