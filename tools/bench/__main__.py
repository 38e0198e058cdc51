from tools.bench.run import main

main()
