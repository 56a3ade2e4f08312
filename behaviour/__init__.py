"""Behavioural tests of the sentiment model, after CheckList (Ribeiro, Wu, Guestrin and Singh,
"Beyond Accuracy: Behavioral Testing of NLP Models with CheckList", ACL 2020).

``suite`` builds the test cases from templates and small lexicons (minimum-functionality,
invariance and directional tests, grouped by capability); ``scoring`` runs a predictor of
p(positive) over them and reports a failure rate per capability. A validation suite only,
never training data. Pure Python and NumPy: importing it imports neither TensorFlow nor any
other package of the project.
"""
