from include.bench.run import main

main()
