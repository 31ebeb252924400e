"""Inference pipeline around the S2ML network (numpy in, numpy out)."""

from .predictor import (DefaultWeightsMissingError, DepthCompletionPredictor, PRECISIONS,
                        PredictorInputError, resolve_device)

__all__ = ['DefaultWeightsMissingError', 'DepthCompletionPredictor', 'PRECISIONS',
           'PredictorInputError', 'resolve_device']
