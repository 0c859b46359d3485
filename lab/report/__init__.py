"""Reports of experiment runs: the terminal (text.py), JSON (jsonreport.py) and one HTML page per run
(html.py, with sequence.py's packet diagram and graph.py's topology drawing). All of them read a
:class:`lab.report.model.RunResult`, which the runner fills; none of them needs root.
"""
