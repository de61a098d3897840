"""Sample images shipped with fastwarp (installed as the package fastwarp.data); see README.md."""
