from pairloop.cli import main

main()
