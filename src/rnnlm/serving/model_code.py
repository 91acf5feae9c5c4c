"""The code of every logged rnnlm MLflow Model (MLflow's "models from code"): loading the model
runs this file, which names the model class; nothing is unpickled. Not imported by the package."""

from mlflow.models import set_model

from rnnlm.serving.pyfunc import LanguageModelPyfunc

set_model(LanguageModelPyfunc())
