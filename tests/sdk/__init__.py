"""Tests of ``tickfan.client``. The folder is ``sdk``, not ``client``: a test package named
``client`` would shadow the load harness's ``client`` module (benches/load) on sys.path."""
